//! `mmgen generate`: a prompt in, a package of files out, on the shipped models
//! (through `mmgen-pipeline`: plan, cache, generate, compose).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mmgen_models::grounded::ScenePlan;
use mmgen_models::hybrid_image::ImageSettings;
use mmgen_models::sampling::SamplingSettings;
use mmgen_pipeline::output::check_out;
use mmgen_pipeline::{CacheOutcome, Modality, OutputPolicy, Request};

use crate::model_args::ModelArgs;
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
    #[command(flatten)]
    models: ModelArgs,
    /// Draw this scene plan (JSON, as `mmgen plan` prints it) instead of the planner's:
    /// objects, poses, background and style under your control.
    #[arg(long, conflicts_with = "model")]
    plan: Option<PathBuf>,
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
            sampling: SamplingSettings {
                negative: args.negative.clone(),
                ..args.sampling.over(SamplingSettings::default())
            },
            init: init.clone(),
            mask: mask.clone(),
        },
        grounded: ImageSettings {
            sampling: SamplingSettings {
                negative: args.negative.clone(),
                ..args
                    .sampling
                    .over(mmgen_models::grounded::image::default_settings().sampling)
            },
            init,
            mask,
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
    let pipeline = args.models.pipeline()?;
    let bar = ProgressBar::new(request.image.sampling.steps as u64).with_style(
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
            format!(
                "{} {} steps, guidance {}",
                used.sampling.steps, used.sampling.sampler, used.sampling.guidance
            )
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
