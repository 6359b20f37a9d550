//! `mmgen generate`: a prompt in, a package of files out, on the shipped models
//! (through `mmgen-pipeline`: plan, cache, generate, compose).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mmgen_models::grounded::ScenePlan;
use mmgen_models::hybrid_image::ImageSettings;
use mmgen_pipeline::output::check_out;
use mmgen_pipeline::{Cache, CacheOutcome, Modality, OutputPolicy, Pipeline, Request};

use crate::device::DeviceArg;
use crate::sampling::SamplingArgs;

#[derive(Args)]
pub struct GenerateArgs {
    /// What to make, in English or Chinese.
    prompt: String,
    /// Output folder (image.png, video.mp4, video.gif, audio.wav, caption.txt, meta.json:
    /// what the plan asks for).
    #[arg(long, default_value = "out/generate")]
    out: PathBuf,
    /// Write the package into an --out folder that holds other files (kept; files of
    /// an earlier package there are replaced). Without it such a folder is refused.
    #[arg(long)]
    overwrite: bool,
    /// What to make, comma-separated (image, video, audio); by default read from the
    /// prompt ("video", "视频" add video; "music", "配乐" add audio; else an image).
    #[arg(long)]
    modalities: Option<String>,
    /// The end-to-end text-to-image model folder. Stills are drawn by the grounded
    /// model (--planner, --renderer) unless this is given.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The grounded model's planner folder (prompt -> scene plan).
    #[arg(long, default_value = "models/grounded-planner")]
    planner: PathBuf,
    /// The grounded model's renderer folder (scene plan -> image).
    #[arg(long, default_value = "models/grounded-renderer")]
    renderer: PathBuf,
    /// Draw this scene plan (JSON, as `mmgen plan` prints it) instead of the planner's:
    /// objects, poses, background and style under your control.
    #[arg(long, conflicts_with = "model")]
    plan: Option<PathBuf>,
    /// The grounded model's trajectory folder (plan -> poses over a clip): clips are
    /// drawn by the grounded model when it exists and no --video-model is given
    /// [default: models/grounded-trajectory].
    #[arg(long, conflicts_with_all = ["model", "video_model"])]
    trajectory: Option<PathBuf>,
    /// The end-to-end text-to-video model folder, the baseline [default:
    /// models/hybrid-video, when it exists and the grounded model makes no clips].
    #[arg(long)]
    video_model: Option<PathBuf>,
    /// The grounded sound's music planner folder (prompt -> instrument, mood, tempo): the
    /// sound is the grounded model's when its three folders exist and no --audio-model
    /// is given [default: models/grounded-music-planner].
    #[arg(long, conflicts_with = "audio_model")]
    music_planner: Option<PathBuf>,
    /// The grounded sound's note model folder (attributes -> score) [default:
    /// models/grounded-notes].
    #[arg(long, conflicts_with = "audio_model")]
    notes: Option<PathBuf>,
    /// The grounded sound's synthesiser folder (score -> audio) [default:
    /// models/grounded-synth].
    #[arg(long, conflicts_with = "audio_model")]
    synth: Option<PathBuf>,
    /// The end-to-end text-to-audio model folder, the baseline [default:
    /// models/hybrid-audio, when it exists and the grounded sound models do not].
    #[arg(long)]
    audio_model: Option<PathBuf>,
    /// Video frames: the grounded model draws them in batches from shared noise, the
    /// end-to-end model in blended windows [default: 24].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=14_400))]
    frames: Option<u64>,
    /// Seconds of audio when there is no video (with a video, the audio lasts as long
    /// as the clip); no cap below an hour [default: 4].
    #[arg(long, value_parser = crate::sampling::seconds_value)]
    seconds: Option<f64>,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// What to steer away from.
    #[arg(long, default_value = "")]
    negative: String,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// img2img: start from this image (PNG/GIF; resized to the model's size).
    #[arg(long)]
    init: Option<PathBuf>,
    /// How much of the init image to redo (0 to 1; with --init).
    #[arg(long, default_value_t = 0.75, value_parser = strength_value)]
    strength: f64,
    /// Inpainting: white where to generate, black where to keep --init.
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Text + image -> video: start the clip from this frame (PNG/GIF; resized).
    #[arg(long)]
    first_frame: Option<PathBuf>,
    /// Cache folder of finished requests [default: $MMGEN_CACHE, $XDG_CACHE_HOME/mmgen
    /// or ~/.cache/mmgen].
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Run the models even if this request was made before, and store nothing.
    #[arg(long, conflicts_with = "cache")]
    no_cache: bool,
    /// Where to run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
}

fn strength_value(text: &str) -> Result<f64, String> {
    let value = crate::sampling::number_in(text, 0.0, 1.0)?;
    if value == 0.0 {
        return Err("0 redoes nothing; allowed more than 0, at most 1".into());
    }
    Ok(value)
}

/// The largest side of an --init, --mask or --first-frame image.
const MAX_INPUT_SIDE: u32 = 4096;

pub fn run(args: GenerateArgs) -> Result<()> {
    if args.prompt.trim().is_empty() {
        bail!("the prompt is empty; say what to make, e.g. mmgen generate \"a red star over the sea at sunset\"");
    }
    let modalities = args.modalities.as_deref().map(Modality::parse_list).transpose()?;
    let policy = if args.overwrite {
        OutputPolicy::Overwrite
    } else {
        OutputPolicy::Refuse
    };
    // Before anything is loaded or made: an --out that cannot take the package fails now.
    check_out(&args.out, policy).with_context(|| format!("--out {}", args.out.display()))?;
    let open = |path: &PathBuf, what: &str| -> Result<image::DynamicImage> {
        let unreadable = || format!("--{what} {}: cannot read the image", path.display());
        // The size from the header, before decoding: a small file can hold a huge image.
        let (w, h) = image::ImageReader::open(path)
            .with_context(unreadable)?
            .with_guessed_format()
            .with_context(unreadable)?
            .into_dimensions()
            .with_context(unreadable)?;
        if w > MAX_INPUT_SIDE || h > MAX_INPUT_SIDE {
            bail!(
                "--{what} {}: the image is {w}x{h}; at most {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE} is allowed (it is resized to the model's size anyway)",
                path.display()
            );
        }
        image::open(path).with_context(unreadable)
    };
    let init = match &args.init {
        Some(path) => Some((open(path, "init")?.to_rgb8(), args.strength)),
        None => None,
    };
    if args.init.is_none() && args.strength != 0.75 {
        bail!("--strength needs --init (the image to start from)");
    }
    if args.mask.is_some() && args.init.is_none() {
        bail!("--mask needs --init (the image whose unmasked part is kept)");
    }
    let mask = match &args.mask {
        Some(path) => Some(open(path, "mask")?.to_luma8()),
        None => None,
    };
    if let (Some(mask), Some((init, _)), Some(path)) = (&mask, &init, &args.mask) {
        if mask.dimensions() != init.dimensions() {
            bail!(
                "--mask {}: the mask is {}x{} but --init is {}x{}; give a mask of the init image's size",
                path.display(),
                mask.width(),
                mask.height(),
                init.width(),
                init.height()
            );
        }
    }
    let scene_plan = match &args.plan {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("--plan {}: cannot read", path.display()))?;
            Some(ScenePlan::from_json(&text).with_context(|| format!("--plan {}", path.display()))?)
        }
        None => None,
    };
    let defaults = Request::new(&args.prompt, args.seed);
    let request = Request {
        modalities,
        image: ImageSettings {
            negative: args.negative.clone(),
            init: init.clone(),
            mask: mask.clone(),
            ..args.sampling.image_settings()
        },
        grounded: ImageSettings {
            negative: args.negative.clone(),
            init,
            mask,
            ..args.sampling.grounded_settings()
        },
        scene_plan,
        frames: args.frames.map_or(defaults.frames, |f| f as usize),
        seconds: args.seconds.unwrap_or(defaults.seconds),
        first_frame: match &args.first_frame {
            Some(path) => Some(open(path, "first-frame")?.to_rgb8()),
            None => None,
        },
        ..defaults
    };
    request.image.check()?;
    request.grounded.check()?;
    let cache = match (args.no_cache, &args.cache) {
        (true, _) => None,
        // A cache the user named that cannot be written is said now, under its flag;
        // the request still runs, unstored.
        (false, Some(dir)) => {
            let cache = Cache::new(dir);
            match cache.check_writable() {
                Ok(()) => Some(cache),
                Err(e) => {
                    eprintln!("warning: --cache {e}; this request will not be stored");
                    None
                }
            }
        }
        (false, None) => Cache::default_dir().map(Cache::new),
    };
    let device = args.device.open()?;
    let mut pipeline = match &args.model {
        Some(model) => Pipeline::load(model, &device).with_context(|| {
            format!(
                "--model {}: cannot load the text-to-image model (models/README.md says how it is trained)",
                model.display()
            )
        })?,
        None => Pipeline::grounded(&args.planner, &args.renderer, &device).with_context(|| {
            format!(
                "--planner {} --renderer {}: cannot load the grounded text-to-image model (models/README.md says how it is trained)",
                args.planner.display(),
                args.renderer.display()
            )
        })?,
    };
    // A default video or audio folder that is absent is no error (a request that needs
    // it says so); a folder given by name must load.
    let trajectory = match (&args.model, &args.video_model) {
        (None, None) => optional_folder(&args.trajectory, "models/grounded-trajectory"),
        _ => None,
    };
    let sound = match &args.audio_model {
        None => {
            let folders = [
                optional_folder(&args.music_planner, "models/grounded-music-planner"),
                optional_folder(&args.notes, "models/grounded-notes"),
                optional_folder(&args.synth, "models/grounded-synth"),
            ];
            match folders {
                [Some(planner), Some(notes), Some(synth)] => Some((planner, notes, synth)),
                // One named while another default is absent: say which.
                _ if args.music_planner.is_some() || args.notes.is_some() || args.synth.is_some() => {
                    let flags = ["--music-planner", "--notes", "--synth"];
                    let missing: Vec<&str> = flags
                        .iter()
                        .zip(&folders)
                        .filter(|(_, f)| f.is_none())
                        .map(|(flag, _)| *flag)
                        .collect();
                    anyhow::bail!(
                        "--music-planner, --notes and --synth make the sound together; give {} as well (its default folder is absent)",
                        missing.join(" and ")
                    )
                }
                _ => None,
            }
        }
        Some(_) => None,
    };
    let (video, audio) = (
        optional_folder(&args.video_model, "models/hybrid-video").filter(|_| trajectory.is_none()),
        optional_folder(&args.audio_model, "models/hybrid-audio").filter(|_| sound.is_none()),
    );
    if let Some(dir) = trajectory {
        pipeline = pipeline
            .with_grounded_video(&dir, &device)
            .with_context(|| format!("--trajectory {}: cannot load the trajectory model", dir.display()))?;
    } else if let Some(dir) = video {
        pipeline = pipeline
            .with_video(&dir, &device)
            .with_context(|| format!("--video-model {}: cannot load the text-to-video model", dir.display()))?;
    }
    if let Some((planner, notes, synth)) = sound {
        pipeline = pipeline
            .with_grounded_audio(&planner, &notes, &synth, &device)
            .with_context(|| {
                format!(
                    "--music-planner {} --notes {} --synth {}: cannot load the grounded sound models",
                    planner.display(),
                    notes.display(),
                    synth.display()
                )
            })?;
    } else if let Some(dir) = audio {
        pipeline = pipeline
            .with_audio(&dir, &device)
            .with_context(|| format!("--audio-model {}: cannot load the text-to-audio model", dir.display()))?;
    }
    let pipeline = pipeline.with_cache(cache);
    let bar = ProgressBar::new(request.image.steps as u64).with_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} steps ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let package = pipeline.generate_into(&request, &args.out, policy, &mut |stage, done, total| {
        bar.set_message(stage.to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    for warning in package
        .warnings
        .iter()
        .chain(&ignored_options(&args, &package.plan.modalities))
    {
        eprintln!("warning: {warning}");
    }
    let used = if package.meta.get("scene_plan").is_some() {
        &request.grounded
    } else {
        &request.image
    };
    let how = match package.cache {
        CacheOutcome::Hit => "from the cache".to_string(),
        CacheOutcome::Miss | CacheOutcome::Off => {
            format!("{} {} steps, guidance {}", used.steps, used.sampler, used.guidance)
        }
    };
    eprintln!(
        "wrote {} in {} ({how}, {:.2} s)",
        package.files.join(", "),
        args.out.display(),
        package.seconds
    );
    Ok(())
}

/// The options given that this package had no use for, each with why.
fn ignored_options(args: &GenerateArgs, made: &[Modality]) -> Vec<String> {
    let list = made.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ");
    let video = made.contains(&Modality::Video);
    let mut ignored = Vec::new();
    if let (Some(frames), false) = (args.frames, video) {
        ignored.push(format!("--frames {frames} was not used: this request makes no video (it made {list}; ask for a clip, or pass --modalities)"));
    }
    if let (Some(_), false) = (&args.first_frame, video) {
        ignored.push(format!(
            "--first-frame was not used: this request makes no video (it made {list})"
        ));
    }
    if let Some(seconds) = args.seconds {
        if !made.contains(&Modality::Audio) {
            ignored.push(format!(
                "--seconds {seconds} was not used: this request makes no audio (it made {list})"
            ));
        } else if video {
            ignored.push(format!("--seconds {seconds} was not used: with a video the audio lasts as long as the clip (set its length with --frames)"));
        }
    }
    ignored
}

/// The folder given, or the default one when it exists.
fn optional_folder(given: &Option<PathBuf>, default: &str) -> Option<PathBuf> {
    match given {
        Some(dir) => Some(dir.clone()),
        None => Some(PathBuf::from(default)).filter(|d| d.exists()),
    }
}
